"""study: a study's life in the storage, independent of what its trials train.

Owns creating and resuming a study with its spec snapshot, budget and deadline, and the
budget's rolling queue of trials (create); known configurations run first (known); the
early stop of a study that stopped improving (stopping); what hpo records in a study and
how its trials count (records); a study as plain data (summary) and its pace (progress);
sampler and pruner construction and their options (samplers); the search space turned into
a trial's params (space).

May import: hpo.errors, hpo.config, hpo.storage, models.vocabulary.
"""
