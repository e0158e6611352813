"""Start the whole coderun stack on one machine: devcluster, the operator and the web UI."""
