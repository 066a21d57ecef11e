"""The encoder's stages, each in its own module; `stgvcodec.api.encode` runs them in order.

    rate.py      how many Gaussians each GoP gets: --gaussians, --bpp (the RUNGS ladder), --quality
    pipeline.py  one GoP: fit -> QAT -> payload -> closed-loop decode
"""
