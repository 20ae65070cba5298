"""GS1 identifiers, below everything that names a trade item.

``keys`` holds the Digital Link primary keys, the mod-10 check digit and GTIN validation;
``digital_link`` parses and builds the Digital Link URIs printed on labels; ``canonical`` turns
any GS1 identifier an EPCIS event may carry (EPC URIs, Digital Links on any host) into the
constrained canonical form of CBV 2.0's event hash. Pure standard library: ``labels`` and
``trace`` import this package, and it imports nothing of the project.
"""
