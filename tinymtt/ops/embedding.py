"""STUB: to be written."""


def embedding_forward(*args, **kwargs):
    raise NotImplementedError('embedding_forward')


def embedding_backward(*args, **kwargs):
    raise NotImplementedError('embedding_backward')


def positional_encoding(*args, **kwargs):
    raise NotImplementedError('positional_encoding')

