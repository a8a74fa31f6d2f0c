"""STUB: to be written."""


def cross_entropy_forward(*args, **kwargs):
    raise NotImplementedError('cross_entropy_forward')


def cross_entropy_backward(*args, **kwargs):
    raise NotImplementedError('cross_entropy_backward')


def mse_forward(*args, **kwargs):
    raise NotImplementedError('mse_forward')


def mse_backward(*args, **kwargs):
    raise NotImplementedError('mse_backward')


def weighted_sum_forward(*args, **kwargs):
    raise NotImplementedError('weighted_sum_forward')


def weighted_sum_backward(*args, **kwargs):
    raise NotImplementedError('weighted_sum_backward')

