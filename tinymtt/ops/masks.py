"""STUB: to be written."""


def causal_mask(*args, **kwargs):
    raise NotImplementedError('causal_mask')


def padding_mask(*args, **kwargs):
    raise NotImplementedError('padding_mask')

