// GitOps path for model deployments: the deployments an application team wants on one existing Azure OpenAI
// account, applied by .github/workflows/models.yml (pull request: what-if; main: approval-gated deploy).
//
// The account is declared `existing`: this template changes nothing about it (kind, network rules, local
// auth...), only the deployments listed. Deployments are written one at a time (@batchSize(1)) because ARM
// answers 409 RequestConflict to a second write on an account while one is still running.
//
// An incremental deployment never deletes: removing an entry from the list leaves the deployment in place.
// Delete it through the service (DELETE /api/deployments/{name}) or the portal in the same pull request.
targetScope = 'resourceGroup'

@description('Name of the existing Azure OpenAI account, in the resource group this is deployed to.')
param accountName string

@description('Deployments to create or update, applied in order, one at a time. Each: {"name", "model": {"format", "name", "version"}, "sku": {"name", "capacity"}, optional "source" (ARM id of the account that holds a fine-tuned model, for cross-region or cross-subscription deploys), optional "raiPolicyName"}.')
param deployments array

@description('Tags set on every deployment; they mark the deployments this path owns.')
param deploymentTags object = {
  'managed-by': 'infra/models'
}

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

@batchSize(1)
resource modelDeployments 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = [for deployment in deployments: {
  parent: account
  name: deployment.name
  tags: deploymentTags
  sku: {
    name: deployment.sku.name
    capacity: deployment.sku.capacity
  }
  properties: {
    model: union({
      format: deployment.model.format
      name: deployment.model.name
      version: deployment.model.version
    }, contains(deployment, 'source') ? { source: deployment.source } : {})
    raiPolicyName: contains(deployment, 'raiPolicyName') ? deployment.raiPolicyName : null
  }
}]

@description('Names of the deployments applied, in order.')
output deploymentNames array = [for (deployment, index) in deployments: modelDeployments[index].name]
