// Data-plane roles the app's identity needs on its own storage account and Application Insights component.
// Nothing here grants management-plane rights, and nothing can read keys (shared keys are off anyway).

@description('Principal id of the identity the Functions host and the code use.')
param principalId string

@description('Name of the app\'s storage account.')
param storageAccountName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

// Built-in role definition ids (the same in every tenant).
var roles = {
  // Functions host storage (AzureWebJobsStorage with an identity): host keys, locks and leases, and the Flex
  // Consumption deployment container, in containers the host creates itself. Microsoft documents Owner, not
  // Contributor, for host storage.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // The host's queue endpoint (AzureWebJobsStorage__queueServiceUri): the host's internal queues, the queue
  // trigger on DEPLOYMENT_REQUESTS_QUEUE (read, delete, move to the poison queue), and the results queue.
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // The audit table (AUDIT_TABLE: write entries, read them for Audit.Read), the usage ledger (USAGE_TABLE: write
  // rows, read them for GET /usage), the work table (DEPLOYMENT_WORK_TABLE: queued requests, deploy intents) and
  // the tables the host creates
  // for its diagnostic events, whose names change every month, hence the account scope.
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // Telemetry to a component with local auth disabled (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var storageRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource storageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in storageRoles: {
  name: guid(storage.id, principalId, roleId)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}
