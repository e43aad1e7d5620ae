"""The HTTP server: an API and a web page that classify images with a trained model (the serve extra)."""
