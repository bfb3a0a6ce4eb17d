"""Scale-out: rollouts on Ray actors (:mod:`rltrain.distributed.ray_rollouts`, extra ``rltrain[ray]``) and the
data-parallel learner on ``torch.distributed`` (:mod:`rltrain.distributed.ddp`). Nothing here is imported until a
trainer asks for it."""
