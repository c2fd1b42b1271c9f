"""zmot-client: the Python client of the zmot next-best-offer API.

>>> from zmot_client import Client
>>> with Client("http://127.0.0.1:8000", api_key="...") as zmot:   # doctest: +SKIP
...     zmot.send_events([{"user_id": "u-17", "type": "search", "query": "tv repair"}])
...     answer = zmot.next_best_offer("u-17", k=3)
"""

from zmot_client.client import AsyncClient, Client, __version__
from zmot_client.errors import (
    ApiError,
    Forbidden,
    InvalidRequest,
    NotFound,
    TransportError,
    Unauthorized,
    Unavailable,
    ZmotClientError,
)
from zmot_client.models import (
    Accepted,
    BatchAnswer,
    Consent,
    ConsentState,
    Erasure,
    Export,
    ExportedProfile,
    Link,
    Offer,
    OfferAnswer,
    Profile,
)
from zmot_client.retry import RetryPolicy

__all__ = [
    "Accepted",
    "ApiError",
    "AsyncClient",
    "BatchAnswer",
    "Client",
    "Consent",
    "ConsentState",
    "Erasure",
    "Export",
    "ExportedProfile",
    "Forbidden",
    "InvalidRequest",
    "Link",
    "NotFound",
    "Offer",
    "OfferAnswer",
    "Profile",
    "RetryPolicy",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "ZmotClientError",
    "__version__",
]
