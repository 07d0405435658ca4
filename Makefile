# `make run` serves the API, `make test` runs every test; `make seed`, `make admin` and `make client` help.
# Each creates .venv on first use, with only what it needs: runtime requirements for run/seed/admin,
# the test tools (requirements-dev.txt) for test, the client generator (requirements-e2e.txt) for client.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
PORT ?= 5000
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed
E2E := $(VENV)/.e2e

.PHONY: run test seed admin client clean

$(RUNTIME): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	touch $@

$(STAMP): $(RUNTIME) requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	touch $@

$(E2E): $(RUNTIME) requirements-e2e.txt
	$(PIP) -r requirements-e2e.txt
	touch $@

run: $(RUNTIME)
	mkdir -p instance
	$(BIN)/python manage.py db upgrade
	$(BIN)/gunicorn -c gunicorn.conf.py --workers 1 --bind 127.0.0.1:$(PORT) 'app:create_app()'

# The whole suite on SQLite, then again on PostgreSQL when TEST_DATABASE_URL is set.
test: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/python tests/run.py

# Demo data up to a shape, and one account per role (password password123 for the accounts it creates);
# running it again adds only what is missing and leaves existing accounts alone. ARGS="--users 3 --images 5".
seed: $(RUNTIME)
	mkdir -p instance
	$(BIN)/python manage.py db upgrade
	$(BIN)/python manage.py seed $(ARGS)

# Create an admin account, or reset its password: make admin EMAIL=boss@example.com PASSWORD='...'
admin: $(RUNTIME)
	@test -n "$(EMAIL)" && test -n "$(PASSWORD)" || { echo "usage: make admin EMAIL=... PASSWORD=..."; exit 2; }
	mkdir -p instance
	$(BIN)/python manage.py db upgrade
	$(BIN)/python manage.py create-user "$(EMAIL)" --password "$(PASSWORD)" --role admin

# A typed Python client generated from the OpenAPI document, in build/api-client (not kept in git).
client: $(E2E)
	mkdir -p build
	$(BIN)/python manage.py openapi write build/openapi.json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/openapi-python-client generate --path build/openapi.json \
		--config tools/client-config.yaml --meta setup --output-path build/api-client --overwrite

clean:
	rm -rf $(VENV) .coverage .coverage.* htmlcov instance build
