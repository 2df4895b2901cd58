"""``registry-storage:``: the directory tree an unmodified ``registry`` serves, read and written directly.

layout.py       the tree's paths and links (pure: no I/O beyond reading and writing those files)
reference.py    registry-storage:ROOT:NAME[:TAG|@DIGEST] names
source.py       reading an image from a tree
destination.py  writing one: blobs hardlinked, tag link last
"""
