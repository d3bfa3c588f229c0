"""A fused elementwise kernel: logit(p) = log(p) - log(1 - p), with its gradient.

The pattern of the kernels in ``stick_breaking_dgms/kernels.py``: a :class:`COp` (through
the kernels' ``_Kernel`` base: the shared math header, the vectorisation flags and the
C-code cache version) with

* ``make_node``: checks and types the inputs, makes the outputs;
* ``infer_shape``: output shapes from input shapes, so the graph needs no run-time check;
* ``L_op``: the gradient, as a graph (``_Kernel.pullback`` gives PyTensor's name for it);
* ``perform``: the NumPy implementation, used by the Python linker and as the reference;
* ``c_support_code_apply`` and ``c_code``: the C implementation, one pass over memory in
  a loop GCC vectorises, computing in double precision and rounding once.
"""
import numpy as np

from .backend import Apply, at
from .kernels import _C_TYPES, _ensure_output, _float_input, _Kernel


class Logit(_Kernel):
    """Elementwise logit of p in (0, 1), any shape, float32 or float64."""

    __props__ = ()

    def make_node(self, p):
        p = _float_input(p, "p")
        return Apply(self, [p], [p.type()])

    def infer_shape(self, *args):  # Aesara: (fgraph, node, shapes); PyTensor: (node, shapes)
        node, shapes = args[-2:]
        return [shapes[0]]

    def L_op(self, inputs, outputs, output_grads):
        (p,), (g,) = inputs, output_grads
        return [g / (p * (1.0 - p))]

    def perform(self, node, inputs, output_storage):
        p64 = inputs[0].astype(np.float64)
        output_storage[0][0] = (np.log(p64) - np.log1p(-p64)).astype(inputs[0].dtype)

    def c_support_code_apply(self, node, name):
        ct = _C_TYPES[node.inputs[0].dtype][0]
        return f"""
static void sbdgm_logit_{name}(npy_intp n, const {ct} *__restrict__ P, {ct} *__restrict__ Y)
{{
    #pragma omp simd
    for (npy_intp i = 0; i < n; i++) {{
        double p = (double)P[i];
        Y[i] = ({ct})(sbdgm_log(p) - sbdgm_log(1.0 - p));
    }}
}}
"""

    def c_code(self, node, name, inputs, outputs, sub):
        (p,), (y,) = inputs, outputs
        ct, typenum = _C_TYPES[node.inputs[0].dtype]
        fail = sub["fail"]
        return f"""
    {{
    PyArrayObject *p_c = PyArray_GETCONTIGUOUS({p});
    if (p_c == NULL) {{ {fail} }}
    {_ensure_output(y, "p_c", typenum, "Py_DECREF(p_c); " + fail)}
    sbdgm_logit_{name}(PyArray_SIZE(p_c), ({ct}*)PyArray_DATA(p_c), ({ct}*)PyArray_DATA({y}));
    Py_DECREF(p_c);
    }}
"""


def logit(p):
    """logit(p) through the fused kernel."""
    return Logit()(p)


def logit_graph(p):
    """The same formula as a plain elementwise graph: the reference the kernel is tested on."""
    return at.log(p) - at.log1p(-p)
