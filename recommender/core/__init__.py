"""The online core: pure logic run on every event and every request.

Nothing here does I/O beyond reading the files it is pointed at, and importing any module of it
loads none of LightFM, SciPy, matplotlib, tqdm, prometheus_client, redis, aiokafka, faust or
FastAPI (``tests/recommender/core/test_core_imports.py`` checks it in a fresh interpreter).
"""
