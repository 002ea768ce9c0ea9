#!/usr/bin/env bash
# Run a command inside the Customs Lab environment (see tools/env.sh): tools/with_env.sh CMD ARGS...
set -eo pipefail
# shellcheck disable=SC1091
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh"
exec "$@"
