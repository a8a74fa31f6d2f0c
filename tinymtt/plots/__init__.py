"""Every picture tinymtt draws (matplotlib is an optional extra: ``pip install 'tinymtt[lessons]'``).

    canvas    finding matplotlib, and saving a PNG the same way each time (no metadata)
    history   a run's curves.png and conflict.png, from its history.jsonl
    figures   the README and lesson figures, from trained models (``tinymtt figures``)
    transfer  the label-budget sweep (tinymtt transfer): accuracy against the number of labels
    toy       the CAGrad toy's trajectories (tinymtt.mtl.toy)
"""
