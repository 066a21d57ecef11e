"""The encoder's stages, each in its own module; `stgvcodec.api.encode` runs them in order.

    plan.py      which GoPs are key GoPs (--keyint, cuts) and which may be predicted
    rate.py      how many Gaussians each GoP gets: --gaussians, --bpp (the RUNGS ladder), --quality
    pipeline.py  one GoP: fit -> QAT -> payload -> closed-loop decode (predicted or key)
"""
