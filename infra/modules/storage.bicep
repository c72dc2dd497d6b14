// The Function App's own storage account (AzureWebJobsStorage), used only through Entra identities:
// shared-key access is off, so no key or key-bearing connection string exists for it anywhere.
// It holds the Functions host's blobs (keys, leases), the Flex Consumption deployment package container
// and the audit table.

@description('Azure region of the account.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Storage account name: 3-24 lowercase letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Blob container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string

@description('Table the service writes its audit trail to (app setting AUDIT_TABLE).')
@minLength(3)
@maxLength(63)
param auditTableName string = 'audit'

@description('Table the service writes its usage ledger to (app setting USAGE_TABLE).')
@minLength(3)
@maxLength(63)
param usageTableName string = 'usage'

@description('Name of the table of queued requests, keep-alive claims and deploy intents.')
param workTableName string = 'deploymentwork'

@description('Queues of queue-triggered deployments: requests, their poison queue, results.')
param queueNames array = []

@description('Replication of the account. Geo-redundant by default: the audit trail lives here.')
@allowed([
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('Days deleted blobs and containers can be restored.')
@minValue(1)
@maxValue(365)
param softDeleteRetentionDays int = 7

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:The Flex Consumption host reaches its storage over the public endpoint unless the app is VNet-integrated; shared keys are off, so every request needs an Entra token and a data role.
  // checkov:skip=CKV_AZURE_43:The name is a parameter (checkov validates literal names only); main.bicep derives it as st<uniqueString>, lowercase letters and digits, and @minLength/@maxLength bound it.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: public network access stays on for the host; anonymous blob access and shared keys are both disabled.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    dnsEndpointType: 'Standard'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource auditTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: auditTableName
}

resource usageTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: usageTableName
}

resource workTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: workTableName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for name in queueNames: {
  parent: queueService
  name: name
}]

@description('Name of the storage account.')
output name string = storage.name

@description('Primary blob endpoint, with a trailing slash.')
output blobEndpoint string = storage.properties.primaryEndpoints.blob

@description('Name of the audit table.')
output auditTableName string = auditTable.name
