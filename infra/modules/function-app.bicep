// The Function App on the Flex Consumption plan: Python, system-assigned managed identity (plus an optional
// user-assigned one, which then becomes the identity the code and the host use), keyless storage and
// Application Insights, HTTPS only, TLS 1.2, no FTP or basic-auth publishing, and App Service Authentication
// (Microsoft Entra ID) in front of every route.

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource. The app also gets azd-service-name.')
param tags object = {}

@description('Name of the Function App (also its default host name prefix).')
param functionAppName string

@description('Name of the Flex Consumption plan.')
param planName string

@description('azd service name the app is tagged with (azure.yaml services key).')
param serviceName string = 'api'

@description('Python version of the Flex Consumption runtime.')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Instance memory of the Flex Consumption plan, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Concurrent HTTP requests one instance takes before the platform adds another.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Spread the plan across availability zones (keeps at least two always-ready instances billed).')
param zoneRedundant bool = false

@description('Name of the app\'s storage account (AzureWebJobsStorage, deployment container, audit table).')
param storageAccountName string

@description('Blob container the plan deploys the app package from.')
param deploymentContainerName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Name of a user-assigned identity to create and use for storage, telemetry and Azure OpenAI (AZURE_CLIENT_ID). Empty: the system-assigned identity does all of it.')
param userAssignedIdentityName string = ''

@description('The service\'s own app settings (see services/settings.py); platform settings are added here.')
param appSettings object

@description('Application (client) id of the Entra app registration that represents this API.')
param authClientId string

@description('Tenant of the app registration; tokens from other tenants are refused.')
param authTenantId string

@description('Audiences accepted in bearer tokens.')
param authAllowedAudiences array

@description('Paths served without authentication.')
param authExcludedPaths array

var useUserAssignedIdentity = !empty(userAssignedIdentityName)
var storageSuffix = environment().suffixes.storage

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource userIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (useUserAssignedIdentity) {
  name: userAssignedIdentityName
  location: location
  tags: tags
}

// Settings the Functions host, the platform and azure-identity read. Keyless: the storage settings name only
// service URIs, and the Application Insights connection string carries an identifier, not a secret (local
// auth is disabled on the component, so ingestion needs the identity's Entra token). With a user-assigned
// identity, the host, the telemetry exporter and azure-identity all use it, by client id.
var platformSettings = [
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: 'https://${storageAccountName}.blob.${storageSuffix}'
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: 'https://${storageAccountName}.queue.${storageSuffix}'
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: 'https://${storageAccountName}.table.${storageSuffix}'
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: useUserAssignedIdentity ? 'ClientId=${userIdentity!.properties.clientId};Authorization=AAD' : 'Authorization=AAD'
  }
  {
    name: 'PYTHON_ENABLE_INIT_INDEXING'
    value: '1'
  }
  {
    name: 'AZURE_TOKEN_CREDENTIALS'
    value: 'ManagedIdentityCredential'
  }
]

var userAssignedIdentitySettings = useUserAssignedIdentity ? [
  {
    name: 'AzureWebJobsStorage__clientId'
    value: userIdentity!.properties.clientId
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: userIdentity!.properties.clientId
  }
] : []

// The service's settings as name/value pairs. They come from parameters only, so the list is known when the
// deployment starts (a for-expression needs that). App settings are strings, so 120 becomes '120'. main.bicep
// keeps their names apart from the platform's (tests/infra checks it).
var serviceSettings = [for setting in items(appSettings): {
  name: setting.key
  value: string(setting.value)
}]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy on Flex Consumption keeps at least two always-ready instances billed; it is one parameter (zoneRedundant) away for production.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17:Callers authenticate with Entra bearer tokens (App Service Authentication); client certificates would lock out managed-identity callers such as Logic Apps and Data Factory.
  // checkov:skip=CKV_AZURE_222:The API is called by internal apps, people and Azure services over the internet; every request must carry an Entra token (Return401), so no anonymous caller reaches it.
  // checkov:skip=CKV_AZURE_213:Flex Consumption does not support the App Service health check; the platform replaces failed instances and scales per request.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales out on demand (numberOfWorkers does not apply); there are no fixed instances to fail over between.
  // checkov:skip=CKV_AZURE_16:The identity is always SystemAssigned, plus UserAssigned when one is created; the check compares identity.type to one literal and cannot read the expression (tests/infra asserts it).
  name: functionAppName
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: useUserAssignedIdentity ? 'SystemAssigned, UserAssigned' : 'SystemAssigned'
    userAssignedIdentities: useUserAssignedIdentity ? { '${userIdentity!.id}': {} } : null
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(serviceSettings, platformSettings, userAssignedIdentitySettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: 'https://${storageAccountName}.blob.${storageSuffix}/${deploymentContainerName}'
          authentication: useUserAssignedIdentity ? { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: userIdentity!.id } : { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// No publishing with user names and passwords: deployments use Entra (azd, Azure/functions-action with OIDC).
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication (Easy Auth) with Microsoft Entra ID, as an API: no login pages, no token store,
// a request without a valid token for this API's audience is answered 401 before it reaches Python.
// The app reads the caller's app roles (Deployments.Read, Deployments.Write, Inference.Invoke, Audit.Read)
// from the X-MS-CLIENT-PRINCIPAL header the platform sets.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13:This check reads the retired authsettings (V1) schema (properties.enabled); with authsettingsV2 the switch is platform.enabled, which CKV_AZURE_56 and tests/infra assert.
  // checkov:skip=CKV_AZURE_88:Azure Files applies to plans with a content share; Flex Consumption has none, and this resource is the authentication config, not the storage config.
  // checkov:skip=CKV_AZURE_63:HTTP logging is a property of the web config, not of authsettingsV2; requests and logs go to Application Insights.
  // checkov:skip=CKV_AZURE_65:Detailed error pages are a property of the web config, not of authsettingsV2; they would leak internals to callers anyway.
  // checkov:skip=CKV_AZURE_66:Failed request tracing is a property of the web config (IIS, Windows), not of authsettingsV2; failures go to Application Insights.
  // checkov:skip=CKV_AZURE_80:.NET Framework version is a property of the web config and does not apply to a Python app.
  // checkov:skip=CKV_AZURE_222:publicNetworkAccess is a property of the site (see its own skip), not of authsettingsV2.
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: authExcludedPaths
    }
    httpSettings: {
      requireHttps: true
      routes: {
        apiPrefix: '/.auth'
      }
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: authAllowedAudiences
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

@description('Name of the Function App.')
output name string = site.name

@description('Default host name of the Function App.')
output defaultHostName string = site.properties.defaultHostName

@description('Principal id of the system-assigned identity.')
output systemPrincipalId string = site.identity.principalId

@description('Principal id of the identity the code and the host use (user-assigned if created, else system-assigned).')
output appPrincipalId string = useUserAssignedIdentity ? userIdentity!.properties.principalId : site.identity.principalId

@description('Client id of the user-assigned identity, or empty.')
output appClientId string = useUserAssignedIdentity ? userIdentity!.properties.clientId : ''
