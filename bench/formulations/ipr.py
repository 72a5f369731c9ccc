"""IPR (integral pose regression, Sun et al. 2018): the soft-argmax of K soft-maxed heatmaps
trained with a coordinate loss alone (MMPose's ``IntegralRegressionHead``). The README's worked
example of adding a formulation: the whole family is this record."""
from bench.formulations import Formulation, register
from bench.formulations.dsnt import (continuous, integral_head_args, integral_perfect_output,
                                     soft_argmax)
from bench.formulations.heatmap import heatmap_geometry

register(Formulation(
    name='IPR', heads=('IntegralRegressionHead',), codecs=('IntegralRegressionLabel',),
    geometry=heatmap_geometry, head_args=integral_head_args, describe=soft_argmax,
    resolution=continuous, perfect_output=integral_perfect_output, flips='coordinates'))
