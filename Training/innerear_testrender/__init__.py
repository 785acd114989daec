"""An independent test renderer for real temporal-bone anatomy and the leave-one-specimen-out
evaluation built on it.

Written apart from the training renderer (``innerear_synth``) on purpose: a model is only shown
to work on appearance it was not trained to expect if the test images come from other physics.
"""
