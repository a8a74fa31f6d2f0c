"""STUB: to be written."""


def relu_forward(*args, **kwargs):
    raise NotImplementedError('relu_forward')


def relu_backward(*args, **kwargs):
    raise NotImplementedError('relu_backward')


def gelu_forward(*args, **kwargs):
    raise NotImplementedError('gelu_forward')


def gelu_backward(*args, **kwargs):
    raise NotImplementedError('gelu_backward')

