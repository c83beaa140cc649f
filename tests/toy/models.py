"""The toy's own database: the backbone tables and the members it has noted."""
from sqlalchemy import MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orglife.common.db import NAMING_CONVENTION, backbone_tables


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


backbone = backbone_tables(Base.metadata)


class Noted(Base):
    __tablename__ = "noted"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
