# Offline settings for running the Pulumi engine in this repo. Source it (bash or zsh):
#
#   . tools/pulumi-env.sh
#
# After `make engine` (or tools/install-pulumi and then tools/install-plugin), this gives a
# shell where `pulumi up` runs YAML programs (runtime: yaml) that use hostup:index:*
# resources, from any directory: the bin dir holds pulumi and the Python and YAML language
# hosts, and the hostup plugin is installed in PULUMI_HOME. With a PULUMI_HOME of your own,
# run tools/install-plugin with that PULUMI_HOME set.
#
# - PATH: prepends the engine's bin dir: $PULUMI_BIN when set (e.g. from
#   PULUMI_BIN=$(tools/install-pulumi | tail -1)), otherwise the cache that
#   tools/install-pulumi builds, .tools/pulumi/v<version>/bin. Sourcing does not build or
#   install anything; run `make engine` (or the two tools above) first.
# - PULUMI_SKIP_UPDATE_CHECK=true: no "new version available" lookup.
# - PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true: never download plugins.
# - PULUMI_HOME: $REPO/.state/pulumi-home unless already set (plugins, credentials and
#   workspace settings stay inside the git-ignored .state/); tools/install-plugin uses the
#   same default.
#
# Secrets are the caller's business: set PULUMI_CONFIG_PASSPHRASE (or a secrets provider)
# and log in to a backend yourself, e.g. `pulumi login file://$REPO/.state/backend`.

if [ -n "${BASH_SOURCE:-}" ]; then
  _pulumi_env_file=${BASH_SOURCE[0]}
elif [ -n "${ZSH_VERSION:-}" ]; then
  # shellcheck disable=SC2296
  _pulumi_env_file=${(%):-%x}
else
  _pulumi_env_file=tools/pulumi-env.sh  # plain sh: assume the repo root is the working dir
fi
_pulumi_env_repo=$(cd "$(dirname "$_pulumi_env_file")/.." && pwd -P)

if [ -z "${PULUMI_BIN:-}" ]; then
  _pulumi_env_version=$(sed -n 's/^PULUMI_VERSION=\([0-9][0-9.]*\).*/\1/p' "$_pulumi_env_repo/tools/install-pulumi")
  PULUMI_BIN=$_pulumi_env_repo/.tools/pulumi/v$_pulumi_env_version/bin
fi
case ":$PATH:" in
  *":$PULUMI_BIN:"*) ;;
  *) PATH=$PULUMI_BIN:$PATH ;;
esac
export PATH PULUMI_BIN

export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_HOME="${PULUMI_HOME:-$_pulumi_env_repo/.state/pulumi-home}"

unset _pulumi_env_file _pulumi_env_repo _pulumi_env_version
