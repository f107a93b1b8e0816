from pathlib import Path
from qra_bench.models.tiny import PretrainSettings, STAGES, pretrain, TINY_DIR
import shutil

src = Path("/tmp/tiny-s2")
if not src.exists():
    shutil.copytree(TINY_DIR, src)
stages = STAGES + (PretrainSettings(steps=600, lr=1e-3, warmup=20, seed=2, task_share=0.5),)
m = pretrain(Path("/tmp/tiny-s3"), stages, resume_from=src, stages_done=2)
print(m["model_sha256"])
