# Two commands do all set-up: `make analysis` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPILED := $(VENV)/.compiled
SPECS := models/paper_logit.toml models/hierarchical_logit.toml models/coarsened_latent.toml models/latent_factor.toml

.PHONY: analysis test test-slow benchmark clean blas browser

# PyTensor (under PyMC) needs a BLAS library it can link; without one it warns and runs many
# times slower. Install Debian's OpenBLAS when missing and we may (root with apt); else advise.
blas:
	@ldconfig -p 2>/dev/null | grep -q 'libopenblas.so ' || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq libopenblas-dev >/dev/null) || echo "note: could not install libopenblas-dev; PyTensor will be slower"; \
	  else echo "note: install OpenBLAS (Debian/Ubuntu: sudo apt-get install libopenblas-dev) for faster PyTensor"; fi; }

$(STAMP): pyproject.toml | blas
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools prints a banner about editable installs: a builder's warning, not the user's
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The tests fit the four models many times: compile them once first. (`make analysis` needs no such step:
# its fits compile each model once, two processes at a time.)
$(COMPILED): $(STAMP)
	@echo "Compiling the four models on the embedded data once, two at a time (about two minutes on a fresh 2-core machine), so their first fits start in seconds"
	@# two processes, one per core: latent_factor (the longest) beside the other three
	{ $(BIN)/bayes-intl compile models/latent_factor.toml || echo "note: precompiling latent_factor failed; its first fit will compile it"; } & \
	$(BIN)/bayes-intl compile $(filter-out models/latent_factor.toml,$(SPECS)) || echo "note: precompiling failed; each model's first fit will compile it"; \
	wait
	touch $(COMPILED)

# The report test opens the HTML report in headless Chromium: install Debian's package when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "note: could not install chromium; the browser tests will fail"; \
	  else echo "note: install Chromium (Debian/Ubuntu: sudo apt-get install chromium) for the browser tests"; fi; }

# The whole re-analysis, ending with the report's path. QUICK=1 for the one-minute first look;
# SEARCH=1 reruns the reconstruction search (about 20 seconds) instead of checking the shipped table;
# FULL=1 fits the cheap models on all 250 reconstructions of the ensemble and latent_factor on the best 25.
analysis: $(STAMP)
	$(BIN)/bayes-intl run models/analysis.toml $(if $(QUICK),--quick,) $(if $(SEARCH),--search,) $(if $(FULL),--full,) $(if $(STUDY),--study $(STUDY),)

test: $(COMPILED) browser
	$(BIN)/python -m pytest -q

test-slow: $(COMPILED)
	$(BIN)/python -m pytest -q -m slow

benchmark: $(COMPILED)
	$(BIN)/python benchmarks/samplers.py

clean:
	rm -rf $(VENV) reports/audit reports/baseline reports/runs reports/analysis reports/report
