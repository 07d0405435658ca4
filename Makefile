# The two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
STAMP := $(VENV)/.installed

.PHONY: run test clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	mkdir -p instance
	$(BIN)/python manage.py db upgrade
	$(BIN)/gunicorn -c gunicorn.conf.py --workers 1 --bind 127.0.0.1:$(PORT) 'app:create_app()'

# The whole suite on SQLite, then again on PostgreSQL when TEST_DATABASE_URL is set.
test: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/python tests/run.py

clean:
	rm -rf $(VENV) .coverage .coverage.* htmlcov instance
