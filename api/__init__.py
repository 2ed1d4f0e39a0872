"""FastAPI application: thin routes, auth dependencies, schemas and error mapping only."""
