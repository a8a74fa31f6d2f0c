"""STUB: to be written."""


def softmax_forward(*args, **kwargs):
    raise NotImplementedError('softmax_forward')


def softmax_backward(*args, **kwargs):
    raise NotImplementedError('softmax_backward')


def log_softmax_forward(*args, **kwargs):
    raise NotImplementedError('log_softmax_forward')


def log_softmax_backward(*args, **kwargs):
    raise NotImplementedError('log_softmax_backward')

