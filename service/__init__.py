"""BearID's BentoML service, installed as `bearid.service` (`bentoml serve bearid.service.service:BearID`)."""
