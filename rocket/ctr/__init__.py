"""CTR prediction data: hashing, feature vocabularies and the CTR datasets (see ``rocket.ctr.data``)."""
