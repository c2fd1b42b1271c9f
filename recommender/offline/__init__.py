"""Offline tools beside the online core: training, calibration, evaluation and its report,
tuning, importers of public clickstreams and the synthetic demo shop.

They may load LightFM, SciPy, matplotlib and tqdm; the worker and the API never import them.
"""
