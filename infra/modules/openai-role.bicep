// One role assignment on one existing Azure OpenAI (Cognitive Services) account, deployed into the account's
// own resource group (main.bicep scopes this module there, in any subscription of the tenant). The account
// is declared `existing`: nothing about it is changed.

@description('Name of the existing Azure OpenAI account in this resource group.')
param accountName string

@description('Principal id of the Function App\'s identity.')
param principalId string

@description('Built-in role definition id (a GUID) to grant on the account.')
param roleDefinitionId string

@description('What the assignment is for, shown in the portal.')
param assignmentDescription string

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

resource roleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleDefinitionId)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    description: assignmentDescription
  }
}

@description('Resource id of the role assignment.')
output roleAssignmentId string = roleAssignment.id
