"""The modes a run can be in, one module each: :mod:`~taskhub.modes.train`,
:mod:`~taskhub.modes.evaluate`, :mod:`~taskhub.modes.predict`, :mod:`~taskhub.modes.report`
and :mod:`~taskhub.modes.demo`; :mod:`~taskhub.modes.trainer` is the Trainer plumbing
train and evaluate share. :mod:`taskhub.runner` picks one for a run."""
