// Model deployments of one Azure OpenAI account. Application teams change this file through pull requests:
// the pull request shows the what-if, a platform owner approves the deploy after merge.
// Rules (docs/deploy.md, "GitOps for model deployments"):
// - change either the model or the capacity of a deployment in one pull request, not both (ARM refuses it);
// - a fine-tuned deployment costs an hourly hosting fee while it exists, used or not;
// - Azure deletes a fine-tuned deployment after 15 days without calls, and a DeveloperTier one after 24 h:
//   the next deploy of this file recreates it.
using './main.bicep'

param accountName = 'aoai-swedencentral'

param deployments = [
  {
    name: 'support-bot'
    model: {
      format: 'OpenAI'
      name: 'gpt-4o-mini-2024-07-18.ft-7c1d2a3b4e5f'
      version: '1'
    }
    sku: {
      name: 'Standard'
      capacity: 1
    }
  }
  {
    name: 'claims-triage'
    model: {
      format: 'OpenAI'
      name: 'gpt-4.1-mini-2025-04-14.ft-0ab3f80e4f22'
      version: '1'
    }
    sku: {
      name: 'GlobalStandard'
      capacity: 10
    }
    // Trained in another region: deployed here from the account that holds it (cross-region deploy).
    source: '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-openai-training/providers/Microsoft.CognitiveServices/accounts/aoai-northcentralus'
  }
]
