#!/bin/bash
# The short soak for `make check`: 100 back-to-back snapshots against one
# snapd, with tests/soak.sh's checks (fd count flat, VmRSS within 8 MiB of
# the sample after the first 50).
SOAK_COUNT=100 exec bash "$(dirname "$0")/../soak.sh"
