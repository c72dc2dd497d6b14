#!/bin/sh
# azd preprovision hook (azure.yaml): makes sure the API's Microsoft Entra app registration exists and that the
# azd environment's AUTH_CLIENT_ID names it (infra/main.parameters.json passes it to main.bicep).
#
# Secret-free and idempotent. With AUTH_CLIENT_ID already set it does nothing. Otherwise it reuses the app
# registration with the same display name, or creates one from infra/entra/app-registration.json (the four app
# roles, a user_impersonation scope, v2 access tokens, this tenant only) and pre-authorizes the Azure CLI for
# that scope (infra/entra/api-preauthorize-azure-cli.json), so people can get a token with `az account
# get-access-token`. It then sets the identifier URI api://<client-id> and makes sure the service principal
# exists with "assignment required", so only principals given an app role get a token for the API.
# No client secret is created: App Service Authentication only validates bearer tokens.
#
# Needs az (signed in, allowed to create app registrations) and azd. Display name: AUTH_APP_NAME, by default
# fine-tuned-deployments-<AZURE_ENV_NAME>.
set -eu
. "$(dirname "$0")/entra-common.sh"

if [ -n "${AUTH_CLIENT_ID:-}" ]; then
  echo "AUTH_CLIENT_ID is set: using app registration $AUTH_CLIENT_ID."
  exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
template="$here/../entra/app-registration.json"
preauthorize="$here/../entra/api-preauthorize-azure-cli.json"
name="${AUTH_APP_NAME:-fine-tuned-deployments-${AZURE_ENV_NAME:?AZURE_ENV_NAME is not set: run this through azd}}"
check_display_name AUTH_APP_NAME "$name"

graph=$(az cloud show --query endpoints.microsoftGraphResourceId -o tsv)
graph="${graph%/}/v1.0"

client_id=$(az ad app list --display-name "$name" --query '[0].appId' -o tsv)
if [ -n "$client_id" ]; then
  echo "Using the existing app registration '$name' ($client_id)."
else
  echo "Creating the app registration '$name'."
  body=$(mktemp)
  trap 'rm -f "$body"' EXIT
  sed "s|__DISPLAY_NAME__|$name|" "$template" > "$body"
  client_id=$(az rest --method POST --url "$graph/applications" --body "@$body" --query appId -o tsv)
  # The scope exists now; a pre-authorization may name it.
  retry az rest --method PATCH --url "$graph/applications(appId='$client_id')" --body "@$preauthorize"
fi

retry az ad app update --id "$client_id" --identifier-uris "api://$client_id"

sp_id=$(az ad sp list --filter "appId eq '$client_id'" --query '[0].id' -o tsv)
if [ -z "$sp_id" ]; then
  retry az ad sp create --id "$client_id" --output none
fi
retry az rest --method PATCH --url "$graph/servicePrincipals(appId='$client_id')" \
  --body '{"appRoleAssignmentRequired": true}'

azd env set AUTH_CLIENT_ID "$client_id"
echo "AUTH_CLIENT_ID=$client_id (token audience api://$client_id). Give callers app roles: docs/deploy.md."
