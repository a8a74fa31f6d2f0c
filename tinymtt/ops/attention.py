"""STUB: to be written."""


def attention_forward(*args, **kwargs):
    raise NotImplementedError('attention_forward')


def attention_backward(*args, **kwargs):
    raise NotImplementedError('attention_backward')

