"""moto_server with one fix for IAM mode (tests/common/moto.rs, Moto::start_iam): S3 signatures
are checked against the path as the client signed it (each byte outside A-Z a-z 0-9 -_.~/
percent-encoded, SigV4's S3 rule), not against the decoded path moto gets from its WSGI layer.
Without it, moto 5.2.1 answers SignatureDoesNotMatch to every signed request whose key holds a
character SigV4 encodes, `:` included (the userid key layout's `<role-id>:<instance-id>`).
Same arguments as moto_server.
"""

from urllib.parse import quote, unquote, urlsplit, urlunsplit

from moto.iam import access_control

_orig = access_control.IAMRequestBase._create_aws_request


def _create_aws_request(self):
    request = _orig(self)
    parts = urlsplit(request.url)
    path = quote(unquote(parts.path), safe="/~")
    request.url = urlunsplit(parts._replace(path=path))
    return request


access_control.S3IAMRequest._create_aws_request = _create_aws_request

if __name__ == "__main__":
    from moto.server import main

    main()
