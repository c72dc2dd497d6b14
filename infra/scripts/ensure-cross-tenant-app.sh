#!/bin/sh
# azd postprovision hook (azure.yaml): the multi-tenant app registration through which the Function App's
# user-assigned managed identity reaches Azure OpenAI accounts in other Microsoft Entra tenants.
#
# Opt-in: runs only when the azd environment says CROSS_TENANT_APP=true. Secret-free and idempotent:
# - reuses the app named by CROSS_TENANT_APP_CLIENT_ID (which this hook stores after creating it; an app is
#   never picked by its display name, which anyone in the tenant could have registered first), after checking
#   it is multi-tenant; or creates it, named CROSS_TENANT_APP_NAME (default
#   fine-tuned-deployments-cross-tenant-<AZURE_ENV_NAME>), multi-tenant (AzureADMultipleOrgs), with no secret
#   and no certificate;
# - makes sure its service principal exists in the home tenant;
# - adds the federated identity credential that trusts the identity: issuer <authority>/<home tenant>/v2.0,
#   subject the identity's principal id, audience api://AzureADTokenExchange (the public cloud's; set
#   CROSS_TENANT_AUDIENCE for a sovereign cloud). Only a user-assigned identity can be trusted this way, so the
#   hook refuses when the app runs with its system-assigned identity (set userAssignedIdentityName);
# - stores CROSS_TENANT_APP_CLIENT_ID in the azd environment (main.parameters.json passes it on the next
#   provision) and sets it on the Function App now;
# - prints the admin-consent URL to send to each other tenant's administrator.
#
# Needs az (signed in, allowed to create app registrations) and azd. Reads the provision outputs azd exports:
# AZURE_TENANT_ID, AZURE_RESOURCE_GROUP, FUNCTION_APP_NAME, FUNCTION_APP_PRINCIPAL_ID, APP_IDENTITY_PRINCIPAL_ID.
set -eu
. "$(dirname "$0")/entra-common.sh"

if [ "${CROSS_TENANT_APP:-false}" != "true" ]; then
  echo "CROSS_TENANT_APP is not true: no multi-tenant app (accounts in other tenants are not used)."
  exit 0
fi

tenant="${AZURE_TENANT_ID:?AZURE_TENANT_ID is not set: run this through azd after provisioning}"
principal="${APP_IDENTITY_PRINCIPAL_ID:?APP_IDENTITY_PRINCIPAL_ID is not set: run this through azd}"
if [ "$principal" = "${FUNCTION_APP_PRINCIPAL_ID:-}" ]; then
  echo "The Function App uses its system-assigned identity, which a federated credential cannot trust." >&2
  echo "Set userAssignedIdentityName (azd env set USER_ASSIGNED_IDENTITY_NAME <name>), provision, run again." >&2
  exit 1
fi
name="${CROSS_TENANT_APP_NAME:-fine-tuned-deployments-cross-tenant-${AZURE_ENV_NAME:?AZURE_ENV_NAME is not set}}"
check_display_name CROSS_TENANT_APP_NAME "$name"
authority="${AZURE_AUTHORITY_HOST:-https://login.microsoftonline.com}"
authority="${authority%/}"
audience="${CROSS_TENANT_AUDIENCE:-api://AzureADTokenExchange}"

client_id="${CROSS_TENANT_APP_CLIENT_ID:-}"
if [ -n "$client_id" ]; then
  audience_of_app=$(az ad app show --id "$client_id" --query signInAudience -o tsv)
  if [ "$audience_of_app" != "AzureADMultipleOrgs" ]; then
    echo "App $client_id (CROSS_TENANT_APP_CLIENT_ID) signs in '$audience_of_app', not AzureADMultipleOrgs:" >&2
    echo "other tenants could not consent to it. Name a multi-tenant app, or unset it to create one." >&2
    exit 1
  fi
  echo "Using the multi-tenant app $client_id."
else
  echo "Creating the multi-tenant app '$name'."
  client_id=$(az ad app create --display-name "$name" --sign-in-audience AzureADMultipleOrgs --query appId -o tsv)
fi

sp_id=$(az ad sp list --filter "appId eq '$client_id'" --query '[0].id' -o tsv)
if [ -z "$sp_id" ]; then
  retry az ad sp create --id "$client_id" --output none
fi

credential="function-app-identity"
# Issuer, subject and audience must all match: a credential left from another identity or cloud is replaced.
wanted=$(printf '%s %s %s' "$authority/$tenant/v2.0" "$principal" "$audience")
existing=$(az ad app federated-credential list --id "$client_id" \
  --query "[?name=='$credential'].[issuer, subject, audiences[0]]" -o tsv | tr '\t' ' ')
if [ "$existing" != "$wanted" ]; then
  if [ -n "$existing" ]; then
    retry az ad app federated-credential delete --id "$client_id" --federated-credential-id "$credential"
  fi
  body=$(mktemp)
  trap 'rm -f "$body"' EXIT
  cat > "$body" <<JSON
{"name": "$credential", "issuer": "$authority/$tenant/v2.0", "subject": "$principal",
 "audiences": ["$audience"], "description": "The Function App's user-assigned managed identity"}
JSON
  retry az ad app federated-credential create --id "$client_id" --parameters "@$body" --output none
fi

azd env set CROSS_TENANT_APP_CLIENT_ID "$client_id"
az functionapp config appsettings set --resource-group "${AZURE_RESOURCE_GROUP:?}" --name "${FUNCTION_APP_NAME:?}" \
  --settings "CROSS_TENANT_APP_CLIENT_ID=$client_id" --output none
echo "CROSS_TENANT_APP_CLIENT_ID=$client_id. In each other tenant an administrator consents once:"
echo "  $authority/<other-tenant-id>/adminconsent?client_id=$client_id"
echo "then gives the app's service principal there the role docs/deploy.md names."
