"""Sphinx directives that generate the models and shipped-weights tables from the code, as torchvision generates
its weights tables: ``.. models-table::`` (the registry) and ``.. pretrained-table::`` (the manifest's model cards),
so the site can never disagree with ``resnet-cifar models`` and ``resnet-cifar models --pretrained``."""
from __future__ import annotations

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from resnet_cifar.model_card import CARD_COLUMNS, card_cell
from resnet_cifar.models import list_models, model_description, model_spec
from resnet_cifar.models.summary import count_parameters_of
from resnet_cifar.models.weights import shipped_weights


def _list_table(headers: list[str], rows: list[list[str]], widths: str = "auto") -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [headers, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return lines


class _TableDirective(SphinxDirective):
    def table_lines(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(self.table_lines()), self.content_offset, container)
        return container.children


class ModelsTable(_TableDirective):
    """Every registered model: name, family, parameters (10 classes), description."""

    def table_lines(self) -> list[str]:
        rows = [[f"``{name}``", model_spec(name).family, f"{count_parameters_of(name):,}", model_description(name)]
                for name in list_models()]
        return _list_table(["name", "family", "parameters", "description"], rows)


class PretrainedTable(_TableDirective):
    """Every shipped model with its card's columns, then how each was trained."""

    def table_lines(self) -> list[str]:
        cards = {name: weights.card for name, weights in sorted(shipped_weights().items())}
        rows = [[f"``{name}``", *(card_cell(card, key, form) for key, _, form in CARD_COLUMNS)]
                for name, card in cards.items()]
        lines = _list_table(["name", *(heading for _, heading, _ in CARD_COLUMNS)], rows)
        for name, card in cards.items():
            told = ", ".join(f"{words} {card[key]}" for key, words in
                             (("recipe", "recipe"), ("trained_on", "trained on"), ("measured_on", "measured on"))
                             if card.get(key))
            lines += ["", f"``{name}``: {told or 'no card measured yet'}; trained by ``{card.get('command')}``."]
        return lines


def setup(app: Sphinx) -> dict[str, bool]:
    app.add_directive("models-table", ModelsTable)
    app.add_directive("pretrained-table", PretrainedTable)
    return {"parallel_read_safe": True}
