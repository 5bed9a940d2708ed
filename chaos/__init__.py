"""The fault plane of the harness: a Toxiproxy-compatible proxy (`chaos.proxy`) now; the
Chaos Toolkit experiments and their actions/probes will live beside it."""
