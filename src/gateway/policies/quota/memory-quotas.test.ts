import { createMemoryQuotas } from './memory-quotas.ts';
import { quotaStoreContract } from './quota-contract.ts';

quotaStoreContract('memory', () => createMemoryQuotas());
