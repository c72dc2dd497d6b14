# Shared by the azd hooks that create Microsoft Entra app registrations (sourced, not run).

# Entra replicates a new application for a few seconds: retry the calls that follow its creation.
retry() {
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge 6 ]; then
      return 1
    fi
    attempt=$((attempt + 1))
    sleep "${RETRY_DELAY_SECONDS:-5}"
  done
}

# A display name goes into az arguments and a JSON body: letters, digits, spaces, '.', '_' and '-' only.
check_display_name() {
  case "$2" in
    '' | *[!A-Za-z0-9._\ -]*)
      echo "$1 may hold only letters, digits, spaces, '.', '_' and '-' (got: $2)." >&2
      exit 1
      ;;
  esac
}
