# pybernetes — the two commands that matter: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
APT_PKGS := etcd-server etcd-client docker-registry busybox-static runc iproute2 containernetworking-plugins iptables util-linux nftables conntrack conmon apache2-utils nginx-light qemu-system-x86 crun
STAMP   := $(VENV)/.installed

.PHONY: run test deps system-deps vm-kernel bench clean

run: deps  ## bring up a cluster on https://127.0.0.1:6443 (SQLite store)
	$(BIN)/pybernetes server $(ARGS)

test: deps vm-kernel  ## install everything a fresh machine lacks, then run the whole suite
	$(BIN)/python -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

bench: deps
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.run_all

deps: system-deps $(STAMP)

# Debian packages the suite uses (etcd for the storage contract); only as root.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	else echo "not root: skipping apt packages ($(APT_PKGS)); tests needing them will skip"; fi

# Debian's kernel for the cgroup v2 VM test, unpacked (not installed) in
# /var/cache/pybernetes-vm once; only as root with apt-get, else a no-op.
vm-kernel: $(STAMP)
	$(BIN)/python -m tests.vm.vm --fetch-kernel

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info
