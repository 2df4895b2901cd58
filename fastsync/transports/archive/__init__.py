"""Image archives: ``docker-archive:`` (docker save / docker load tars) and ``oci-archive:``.

tar.py        streaming tar reader/writer and (de)compression of whole archives
docker.py     the docker-archive transport
oci.py        the oci-archive transport (an OCI layout in one tar)
"""
