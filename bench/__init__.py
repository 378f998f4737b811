"""`make bench`: a large-tenant data set, the app under uvicorn in production mode, wrk.

- `bench.datagen`  fills a dedicated database (PostgreSQL or SQLite) through the real migrations.
- `bench.baseline` a bare Litestar app: the ceiling for the same server settings.
- `bench.run`      starts everything, measures, prints the table and writes results/latest.json.
"""
