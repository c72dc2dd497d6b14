// Azure Managed Redis for the shared gateway: per-caller limit counters and failover trips, shared by every
// instance of the Function App. Microsoft Entra ID only (access keys disabled), TLS only; the app's identity
// gets the database's "default" data access policy. Nothing is persisted that matters beyond a minute or a
// quota period, so no persistence or geo-replication is configured.

@description('Name of the Azure Managed Redis instance.')
@minLength(1)
@maxLength(60)
param name string

@description('Region of the Redis instance.')
param location string

@description('Tags added to the Redis instance.')
param tags object = {}

// Not `skuName`: checkov resolves parameters by name across modules, and storage.bicep has a `skuName` of its own.
@description('SKU: Balanced_B0 is the smallest; a larger one for many callers or instances.')
param cacheSkuName string = 'Balanced_B0'

@description('Principal (object) id of the identity the app uses: it gets the default data access policy.')
param principalId string

resource cache 'Microsoft.Cache/redisEnterprise@2025-04-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: cacheSkuName
  }
  properties: {
    minimumTlsVersion: '1.2'
  }
}

resource database 'Microsoft.Cache/redisEnterprise/databases@2025-04-01' = {
  parent: cache
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted'
    port: 10000
    // One endpoint for every key; the limits' keys share a hash tag anyway.
    clusteringPolicy: 'EnterpriseCluster'
    // Counters must never be evicted: an evicted counter would reset a caller's limit.
    evictionPolicy: 'NoEviction'
    accessKeysAuthentication: 'Disabled'
  }
}

resource appAccess 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-04-01' = {
  parent: database
  name: take('app${uniqueString(cache.id, principalId)}', 60)
  properties: {
    accessPolicyName: 'default'
    user: {
      objectId: principalId
    }
  }
}

@description('host:port the app connects to (REDIS_HOST).')
output host string = '${cache.properties.hostName}:10000'
