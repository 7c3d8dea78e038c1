"""Ingress controller: Ingress objects → a route table → a rendered nginx.conf served by
one supervised nginx master (the data plane chosen by bench/ingress_bench.py)."""
