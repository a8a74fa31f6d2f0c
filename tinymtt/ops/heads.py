"""STUB: to be written."""


def split_heads_forward(*args, **kwargs):
    raise NotImplementedError('split_heads_forward')


def split_heads_backward(*args, **kwargs):
    raise NotImplementedError('split_heads_backward')


def merge_heads_forward(*args, **kwargs):
    raise NotImplementedError('merge_heads_forward')


def merge_heads_backward(*args, **kwargs):
    raise NotImplementedError('merge_heads_backward')

