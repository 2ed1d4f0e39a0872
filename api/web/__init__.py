"""The web app: server-rendered pages and small vanilla JS, served by the API process at `/`."""
