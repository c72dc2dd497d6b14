// One role assignment on one existing Azure AI Foundry project (an Azure Machine Learning workspace), deployed into
// the project's own resource group (main.bicep scopes this module there). The workspace is declared `existing`:
// nothing about it is changed.

@description('Name of the existing Foundry project (Azure Machine Learning workspace) in this resource group.')
param workspaceName string

@description('Principal id of the Function App\'s identity.')
param principalId string

@description('Role definition id (a GUID) to grant on the project: Azure AI Developer, or a narrower custom role.')
param roleDefinitionId string

@description('What the assignment is for, shown in the portal.')
param assignmentDescription string

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-10-01' existing = {
  name: workspaceName
}

resource roleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, roleDefinitionId)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    description: assignmentDescription
  }
}

@description('Resource id of the role assignment.')
output roleAssignmentId string = roleAssignment.id
