// Parameters of the production deployment (.github/workflows/app.yml: what-if on pull requests, deploy on
// main after approval). Change them through pull requests. `azd up` uses main.parameters.json instead.
// Replace the placeholder ids with your own before the first run.
using './main.bicep'

param environmentName = 'prod'

param location = 'swedencentral'

// Application (client) id of the API's Entra app registration (docs/deploy.md, "App registration").
param authClientId = '11111111-1111-1111-1111-111111111111'

// Accounts the service deploys to: the identity gets Cognitive Services OpenAI Contributor on each.
param openAiAccounts = {
  main: {
    subscriptionId: '00000000-0000-0000-0000-000000000000'
    resourceGroup: 'rg-openai'
    accountName: 'aoai-swedencentral'
    endpoint: 'https://aoai-swedencentral.openai.azure.com/'
    inferenceDeployments: [
      '*'
    ]
  }
}

// Accounts that only hold fine-tuned models deployed elsewhere: the identity gets read access only.
param sourceOpenAiAccounts = {
  training: {
    subscriptionId: '00000000-0000-0000-0000-000000000000'
    resourceGroup: 'rg-openai-training'
    accountName: 'aoai-northcentralus'
    endpoint: 'https://aoai-northcentralus.openai.azure.com/'
    inferenceDeployments: []
  }
}

// Required: two aliases in all.
param defaultAccount = 'main'
