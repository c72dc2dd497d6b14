// The fine-tuned model deployment service: a Python Function App on the Flex Consumption plan that acts on
// Azure OpenAI accounts only through its managed identity. Deployed by `azd up` (infra/main.parameters.json)
// and by .github/workflows/app.yml (infra/main.bicepparam). See docs/deploy.md.
//
// Resources (in one resource group): Flex Consumption plan and Function App with App Service Authentication,
// storage account (keyless) with the deployment container and the audit table, Log Analytics workspace and
// Application Insights (local auth off), optional user-assigned identity, and role assignments: data roles on
// the storage account and Application Insights, and roles on each Azure OpenAI account (in their own
// resource groups and subscriptions).
targetScope = 'subscription'

@description('Environment name (azd environment): resource names and the azd-env-name tag derive from it.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Azure region of the Function App and its resources. Flex Consumption must be offered there.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create or update. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Function App name (globally unique). Empty: func-<token>.')
param functionAppName string = ''

@description('Storage account name (globally unique, 3-24 lowercase letters and digits). Empty: st<token>.')
param storageAccountName string = ''

@description('Name of a user-assigned managed identity to create and use instead of the system-assigned one for storage, telemetry and Azure OpenAI (sets AZURE_CLIENT_ID). Empty: system-assigned only.')
param userAssignedIdentityName string = ''

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

@description('Concurrent HTTP requests per instance before the platform adds one (the app is async).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Spread the plan across availability zones (keeps at least two always-ready instances billed).')
param zoneRedundant bool = false

@description('Azure OpenAI accounts the service manages, by alias: {"<alias>": {"subscriptionId", "resourceGroup", "accountName", "endpoint", "inferenceDeployments"}}. endpoint is the data-plane URL (https://<name>.openai.azure.com/); inferenceDeployments a list of deployment names or ["*"]. The app\'s identity gets Cognitive Services OpenAI Contributor on each.')
param openAiAccounts object

@description('Accounts used only as the source of cross-region or cross-subscription deploys (same shape, same tenant). They are added to AZURE_OPENAI_ACCOUNTS so a deploy can name them as source, and the identity gets only sourceAccountRoleDefinitionId on them.')
param sourceOpenAiAccounts object = {}

@description('Client id of the multi-tenant app registration that trusts the user-assigned identity (federated credential), for accounts in other tenants (a "tenantId" in openAiAccounts or sourceOpenAiAccounts). Created as docs/deploy.md shows; needs userAssignedIdentityName. Empty: every account is in this tenant. See docs/deploy.md.')
param crossTenantAppClientId string = ''

@description('Role granted on source accounts. Default: Cognitive Services OpenAI User (read models, deployments and fine-tuning jobs; no writes, no keys). See docs/deploy.md.')
param sourceAccountRoleDefinitionId string = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'

@description('DEFAULT_ACCOUNT: alias used when a request names none. Required when there is more than one alias in all.')
param defaultAccount string = ''

@description('FOUNDRY_PROJECTS: Azure AI Foundry projects (hub-based, i.e. Azure Machine Learning workspaces) whose serverless endpoints the service manages, by alias: {"<alias>": {"subscriptionId", "resourceGroup", "workspaceName", "inferenceEndpoints"}}. The app\'s identity gets foundryProjectRoleDefinitionId on each. Empty: no serverless endpoints.')
param foundryProjects object = {}

@description('DEFAULT_PROJECT: project alias used when a request names none. Required when there is more than one project.')
param defaultProject string = ''

@description('ML_ARM_API_VERSION: a stable Microsoft.MachineLearningServices ARM version for workspaces, models, serverless endpoints and marketplace subscriptions.')
param mlArmApiVersion string = '2024-10-01'

@description('Role granted on each Foundry project. Default: Azure AI Developer (serverless endpoints read, write and delete, and reading their keys, which only the service holds; marketplace model subscriptions; models read; no control of the workspace itself). A narrower custom role works too: see docs/deploy.md.')
param foundryProjectRoleDefinitionId string = '64702f94-c441-49e6-a78b-ef80e0188fee'

@description('ARM_ENDPOINT: Azure Resource Manager of this cloud.')
param armEndpoint string = environment().resourceManager

@description('ARM_SCOPE: token scope for ARM.')
param armScope string = '${environment().resourceManager}.default'

@description('ARM_API_VERSION: a stable Microsoft.CognitiveServices ARM version (not a data-plane version).')
param armApiVersion string = '2024-10-01'

@description('AZURE_OPENAI_API_VERSION: data-plane version for the calls the service makes itself.')
param azureOpenAiApiVersion string = '2024-10-21'

@description('AZURE_OPENAI_SCOPE: token scope for the Azure OpenAI data plane (sovereign clouds have their own).')
param azureOpenAiScope string = 'https://cognitiveservices.azure.com/.default'

@description('IMAGE_ANALYSIS_ACCOUNT: alias of the account image analysis uses by default. Empty: the default account.')
param imageAnalysisAccount string = ''

@description('IMAGE_ANALYSIS_DEPLOYMENT: deployment image analysis uses by default. Empty: callers name one.')
param imageAnalysisDeployment string = ''

@description('AUTH_MODE: how the app authorizes callers. entra: by the app roles in the token App Service Authentication validated; keys: any holder of a function key (App Service Authentication stays in front).')
@allowed([
  'entra'
  'keys'
])
param authMode string = 'entra'

@description('AUDIT_TABLE: table of the app\'s storage account that holds the audit trail.')
@minLength(3)
@maxLength(63)
param auditTableName string = 'audit'

@description('USAGE_TABLE: table of the app\'s storage account that holds the usage ledger (one row per inference call).')
@minLength(3)
@maxLength(63)
param usageTableName string = 'usage'

@description('INFERENCE_LIMITS: JSON list of per-caller limit rules (README "A gateway many teams share"). Empty: no limits.')
param inferenceLimits string = ''

@description('INFERENCE_GROUPS: JSON object of failover groups (group name -> members). Empty: none.')
param inferenceGroups string = ''

@description('LIMITS_WHEN_STORE_DOWN: with Redis unreachable, keep enforcing limits per instance (local) or refuse calls under a limit (closed).')
@allowed([
  'local'
  'closed'
])
param limitsWhenStoreDown string = 'local'

@description('Create an Azure Managed Redis instance for the limits\' counters and failover trips (Entra ID only, TLS), and give the app\'s identity its data access policy.')
param deployRedis bool = false

@description('Azure Managed Redis SKU when deployRedis is true.')
param redisSkuName string = 'Balanced_B0'

@description('REDIS_HOST of an existing Azure Managed Redis (host:port) when deployRedis is false; its access policy for the app\'s identity is assigned separately (docs/deploy.md). Empty: limits are counted per instance.')
param redisHost string = ''

@description('DEPLOYMENT_REQUESTS_QUEUE: queue of the app\'s storage account that producers send deployment requests to (the queue trigger\'s binding expression).')
@minLength(3)
@maxLength(63)
param requestsQueueName string = 'deployment-requests'

@description('DEPLOYMENT_RESULTS_QUEUE: queue the outcome of each queued request (and of each deploy intent) goes to.')
@minLength(3)
@maxLength(63)
param resultsQueueName string = 'deployment-results'

@description('SWEEP_SCHEDULE: NCRONTAB schedule of the sweep (expiry, keep-alive, deploy intents), UTC.')
param sweepSchedule string = '0 */15 * * * *'

@description('DEPLOYMENT_WORK_TABLE: table of queued requests (by requestId), keep-alive claims and deploy intents.')
@minLength(3)
@maxLength(63)
param workTableName string = 'deploymentwork'

@description('METRICS_API_VERSION: Azure Monitor metrics API version (the idle report and keep-alive).')
param metricsApiVersion string = '2023-10-01'

@description('Optional overrides of the tuning settings (services.settings.setting_names("tuning")), e.g. {"MAX_WAIT_SECONDS": "120"}. Values are strings.')
param appTuningSettings object = {}

@description('Application (client) id of the Entra app registration of this API (docs/deploy.md; azd creates it in its preprovision hook).')
@minLength(36)
@maxLength(36)
param authClientId string

@description('Tenant of the app registration. Tokens issued by other tenants are refused.')
param authTenantId string = tenant().tenantId

@description('Paths served without a token (the OpenAPI document only).')
param authExcludedPaths array = [
  '/api/openapi.json'
]

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Tags added to every resource.')
param tags object = {}

// Cognitive Services OpenAI Contributor: deployments read/write/delete, inference and fine-tuning data
// actions. Not Cognitive Services Contributor, which can also list the account keys.
var openAiContributorRoleId = 'a001fd3d-188f-4b5d-821b-7da978bf7442'
// Monitoring Reader: the AzureOpenAIRequests metric of each managed account (idle report, keep-alive). Read only.
var monitoringReaderRoleId = '43d0d8ad-25c7-4714-9337-8ba259a9fe05'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var allTags = union(tags, {
  'azd-env-name': environmentName
})
var effectiveResourceGroupName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var effectiveFunctionAppName = empty(functionAppName) ? 'func-${resourceToken}' : functionAppName
var effectiveStorageAccountName = empty(storageAccountName) ? 'st${resourceToken}' : storageAccountName
var effectiveRedisName = 'redis-${resourceToken}'
// Azure Managed Redis answers on <name>.<region>.redis.azure.net:10000 (known before it exists, so the app's
// settings need not wait for it).
var effectiveRedisHost = deployRedis ? '${effectiveRedisName}.${location}.redis.azure.net:10000' : redisHost
var deploymentContainerName = 'app-package-${take(toLower(effectiveFunctionAppName), 32)}-${take(resourceToken, 7)}'

// The service's own settings (services/settings.py reads them). AZURE_OPENAI_ACCOUNTS is the JSON the code
// parses: managed accounts win over source accounts with the same alias.
var appSettings = union(appTuningSettings, {
  AZURE_OPENAI_ACCOUNTS: string(union(sourceOpenAiAccounts, openAiAccounts))
  DEFAULT_ACCOUNT: defaultAccount
  ARM_ENDPOINT: armEndpoint
  ARM_SCOPE: armScope
  ARM_API_VERSION: armApiVersion
  AZURE_OPENAI_API_VERSION: azureOpenAiApiVersion
  AZURE_OPENAI_SCOPE: azureOpenAiScope
  IMAGE_ANALYSIS_ACCOUNT: imageAnalysisAccount
  IMAGE_ANALYSIS_DEPLOYMENT: imageAnalysisDeployment
  AUTH_MODE: authMode
  AUDIT_TABLE: auditTableName
  HOME_TENANT_ID: tenant().tenantId
  CROSS_TENANT_APP_CLIENT_ID: crossTenantAppClientId
  FOUNDRY_PROJECTS: string(foundryProjects)
  DEFAULT_PROJECT: defaultProject
  ML_ARM_API_VERSION: mlArmApiVersion
  INFERENCE_LIMITS: inferenceLimits
  INFERENCE_GROUPS: inferenceGroups
  REDIS_HOST: effectiveRedisHost
  LIMITS_WHEN_STORE_DOWN: limitsWhenStoreDown
  USAGE_TABLE: usageTableName
  DEPLOYMENT_REQUESTS_QUEUE: requestsQueueName
  DEPLOYMENT_RESULTS_QUEUE: resultsQueueName
  SWEEP_SCHEDULE: sweepSchedule
  DEPLOYMENT_WORK_TABLE: workTableName
  METRICS_API_VERSION: metricsApiVersion
})

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: effectiveResourceGroupName
  location: location
  tags: allTags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring-${resourceToken}'
  scope: rg
  params: {
    location: location
    tags: allTags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    retentionInDays: logRetentionInDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage-${resourceToken}'
  scope: rg
  params: {
    location: location
    tags: allTags
    storageAccountName: effectiveStorageAccountName
    deploymentContainerName: deploymentContainerName
    auditTableName: auditTableName
    usageTableName: usageTableName
    workTableName: workTableName
    queueNames: [
      requestsQueueName
      '${requestsQueueName}-poison'
      resultsQueueName
    ]
  }
}

module app 'modules/function-app.bicep' = {
  name: 'function-app-${resourceToken}'
  scope: rg
  params: {
    location: location
    tags: allTags
    functionAppName: effectiveFunctionAppName
    planName: 'plan-${resourceToken}'
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    zoneRedundant: zoneRedundant
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    userAssignedIdentityName: userAssignedIdentityName
    appSettings: appSettings
    authClientId: authClientId
    authTenantId: authTenantId
    authAllowedAudiences: [
      'api://${authClientId}'
      authClientId
    ]
    authExcludedPaths: authExcludedPaths
  }
}

module hostRoles 'modules/host-roles.bicep' = {
  name: 'host-roles-${resourceToken}'
  scope: rg
  params: {
    principalId: app.outputs.appPrincipalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module redis 'modules/redis.bicep' = if (deployRedis) {
  name: 'redis-${resourceToken}'
  scope: rg
  params: {
    name: effectiveRedisName
    location: location
    tags: allTags
    cacheSkuName: redisSkuName
    principalId: app.outputs.appPrincipalId
  }
}

// Accounts in another tenant are reached through the multi-tenant app: their roles are granted in that tenant.
module openAiRoles 'modules/openai-role.bicep' = [for account in items(openAiAccounts): if (toLower(contains(account.value, 'tenantId') ? account.value.tenantId : tenant().tenantId) == toLower(tenant().tenantId)) {
  name: take('openai-contributor-${account.key}-${resourceToken}', 64)
  scope: resourceGroup(account.value.subscriptionId, account.value.resourceGroup)
  params: {
    accountName: account.value.accountName
    principalId: app.outputs.appPrincipalId
    roleDefinitionId: openAiContributorRoleId
    assignmentDescription: 'Fine-tuned deployment service ${effectiveFunctionAppName}: manage deployments, inference, read fine-tuning jobs.'
  }
}]

module monitoringReaderRoles 'modules/openai-role.bicep' = [for account in items(openAiAccounts): if (toLower(contains(account.value, 'tenantId') ? account.value.tenantId : tenant().tenantId) == toLower(tenant().tenantId)) {
  name: take('openai-metrics-${account.key}-${resourceToken}', 64)
  scope: resourceGroup(account.value.subscriptionId, account.value.resourceGroup)
  params: {
    accountName: account.value.accountName
    principalId: app.outputs.appPrincipalId
    roleDefinitionId: monitoringReaderRoleId
    assignmentDescription: 'Fine-tuned deployment service ${effectiveFunctionAppName}: read request metrics (idle report, keep-alive).'
  }
}]

module sourceAccountRoles 'modules/openai-role.bicep' = [for account in items(sourceOpenAiAccounts): if (toLower(contains(account.value, 'tenantId') ? account.value.tenantId : tenant().tenantId) == toLower(tenant().tenantId)) {
  name: take('openai-source-${account.key}-${resourceToken}', 64)
  scope: resourceGroup(account.value.subscriptionId, account.value.resourceGroup)
  params: {
    accountName: account.value.accountName
    principalId: app.outputs.appPrincipalId
    roleDefinitionId: sourceAccountRoleDefinitionId
    assignmentDescription: 'Fine-tuned deployment service ${effectiveFunctionAppName}: read source models for cross-region deploys.'
  }
}]

// Foundry projects in another tenant get their role in that tenant, as accounts do.
module foundryRoles 'modules/foundry-role.bicep' = [for project in items(foundryProjects): if (toLower(contains(project.value, 'tenantId') ? project.value.tenantId : tenant().tenantId) == toLower(tenant().tenantId)) {
  name: take('foundry-project-${project.key}-${resourceToken}', 64)
  scope: resourceGroup(project.value.subscriptionId, project.value.resourceGroup)
  params: {
    workspaceName: project.value.workspaceName
    principalId: app.outputs.appPrincipalId
    roleDefinitionId: foundryProjectRoleDefinitionId
    assignmentDescription: 'Fine-tuned deployment service ${effectiveFunctionAppName}: manage serverless endpoints and their keys, marketplace model subscriptions.'
  }
}]

@description('Region of the deployment.')
output AZURE_LOCATION string = location

@description('Tenant of the deployment and of the app registration.')
output AZURE_TENANT_ID string = authTenantId

@description('Resource group of the Function App.')
output AZURE_RESOURCE_GROUP string = rg.name

@description('Name of the Function App.')
output FUNCTION_APP_NAME string = app.outputs.name

@description('Base URL of the API.')
output FUNCTION_APP_URL string = 'https://${app.outputs.defaultHostName}/api'

@description('Principal id of the Function App\'s system-assigned identity.')
output FUNCTION_APP_PRINCIPAL_ID string = app.outputs.systemPrincipalId

@description('Principal id of the identity that holds the roles (the user-assigned one when created).')
output APP_IDENTITY_PRINCIPAL_ID string = app.outputs.appPrincipalId

@description('Token audience callers request: api://<authClientId>/.default.')
output AUTH_AUDIENCE string = 'api://${authClientId}'
