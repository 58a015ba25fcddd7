"""The entity types each scanning tier can report, known without loading Presidio.

Policy checks use these to reject a misspelt entity (`US_SNN`) or one the configured tier can
never find; a test keeps them equal to what Presidio's registry actually covers.
"""

from __future__ import annotations

PATTERN_ENTITIES = frozenset({
    "CREDIT_CARD", "CRYPTO", "DATE_TIME", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS",
    "MAC_ADDRESS", "MEDICAL_LICENSE", "PHONE_NUMBER", "UK_NHS", "URL", "US_BANK_NUMBER",
    "US_DRIVER_LICENSE", "US_ITIN", "US_PASSPORT", "US_SSN", "UUID",
})
# Added by the spaCy model in the `ner` tier.
NER_ENTITIES = frozenset({"AGE", "EMAIL", "ID", "LOCATION", "NRP", "ORGANIZATION", "PERSON"})

TIERS = {"patterns": PATTERN_ENTITIES, "ner": PATTERN_ENTITIES | NER_ENTITIES}
